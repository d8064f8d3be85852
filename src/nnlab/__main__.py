from nnlab.cli.train import main

main()
