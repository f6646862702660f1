"""The command line, ``meta-spliceai COMMAND`` (entry point ``meta_spliceai.cli.main:main``): one module per
command group, each subcommand a thin call of one library function. The library never imports this package."""
