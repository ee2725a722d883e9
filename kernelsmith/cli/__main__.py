from kernelsmith.cli.root import main

main()
