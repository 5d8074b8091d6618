// weightctl's subcommands; main.cc lists them.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_

#include "client/weightctl/args.h"

namespace weightd::cli {

Command InspectCommand();  // inspect_command.cc
Command ConvertCommand();  // convert_command.cc
Command MatchCommand();    // match_command.cc

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_
