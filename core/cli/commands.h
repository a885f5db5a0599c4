/* commands.h: the subcommands of the hcinfer program, each `int hc_cmd_X(argc, argv)` returning
 * the process exit status (argv[0] is the subcommand's name). */
#ifndef HC_CLI_COMMANDS_H
#define HC_CLI_COMMANDS_H

int hc_cmd_run(int argc, char **argv);
int hc_cmd_eval(int argc, char **argv);
int hc_cmd_inspect(int argc, char **argv);
int hc_cmd_tokenize(int argc, char **argv);
int hc_cmd_plugins(int argc, char **argv);
int hc_cmd_compress(int argc, char **argv);
int hc_cmd_bench(int argc, char **argv);
int hc_cmd_synth(int argc, char **argv);


#endif
