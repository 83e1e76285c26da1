"""The `siamtrack` console script (`tools.cli`) and its subcommands (`tools.cmd_<name>`)."""
