from nnlab.cli.train import entry

entry()
