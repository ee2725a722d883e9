from kernelsmith.cli.app import main

main()
