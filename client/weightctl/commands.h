// weightctl's subcommands; main.cc lists them.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_

#include <vector>

#include "client/weightctl/args.h"

namespace weightd::cli {

Command InspectCommand();  // inspect_command.cc
Command ConvertCommand();  // convert_command.cc
Command MatchCommand();    // match_command.cc
#ifdef WEIGHTD_WEIGHTCTL_REMOTE
Command ListCommand();                    // remote_commands.cc
Command ManifestCommand();                // remote_commands.cc
Command PullCommand();                    // remote_commands.cc
int RunRemoteMatch(const ParsedArgs& args);  // match MODEL --target FILE
// --tls_ca, --tls_cert, --tls_key, --token: every command that talks to a
// server takes them (remote_commands.cc).
std::vector<FlagSpec> CredentialFlagSpecs();
#endif

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_COMMANDS_H_
