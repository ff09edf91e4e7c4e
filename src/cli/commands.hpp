// Sub-commands of the `halfbyte` tool. Each takes the arguments after its name and
// returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace halfbyte::cli {

using Args = std::vector<std::string>;

int cmd_formats(const Args& args);
int cmd_run(const Args& args);
int cmd_info(const Args& args);
int cmd_quantize(const Args& args);
int cmd_perplexity(const Args& args);
int cmd_imatrix(const Args& args);
int cmd_embed(const Args& args);
// `embed --ray ...` (an argument --ray before any `--`): exec python3 -m halfbyte.ray.
bool wants_ray(const Args& args);
[[noreturn]] int cmd_embed_ray(const Args& args);
int cmd_classify(const Args& args);
int cmd_serve(const Args& args);

}  // namespace halfbyte::cli
