from nnlab.train import main

main()
