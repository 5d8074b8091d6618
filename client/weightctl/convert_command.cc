// weightctl convert IN OUT: rewrites the selected state dict in another format.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "client/weightctl/commands.h"
#include "core/checkpoint/select.h"
#include "core/format/checkpoint_io.h"

namespace weightd::cli {
namespace {

int RunConvert(const ParsedArgs& args) {
  const std::string& in = args.positional[0];
  const std::string& out = args.positional[1];
  // Before reading IN, and with the message and exit code pull gives.
  if (absl::Status format = CheckOutputFormat(out); !format.ok()) return Fail(format.message(), 2);
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(in);
  if (!checkpoint.ok()) return Fail(checkpoint.status().message());
  absl::StatusOr<Selection> selection =
      SelectStateDict(*checkpoint, args.Get("select").value_or(""));
  if (!selection.ok()) return Fail(selection.status().message());
  absl::Status written = WriteCheckpoint(out, selection->tensors, checkpoint->file_metadata);
  if (!written.ok()) {
    return Fail(written.message(), written.code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  if (!args.Has("quiet")) {
    std::cerr << "wrote " << selection->tensors.size() << " tensors to " << out << "\n";
  }
  return 0;
}

}  // namespace

Command ConvertCommand() {
  Command c;
  c.name = "convert";
  c.usage = "convert IN OUT [--select PATH] [--quiet]";
  c.summary =
      "Writes the selected state dict of IN to OUT; the format follows OUT's extension "
      "(.safetensors, or .pt/.pth/.bin: torch.save zip format).";
  c.flags = {
      {"select", true, "PATH  state dict to write (default: automatic)"},
      {"quiet", false, "prints nothing on success"},
  };
  c.min_positional = c.max_positional = 2;
  c.run = RunConvert;
  return c;
}

}  // namespace weightd::cli
