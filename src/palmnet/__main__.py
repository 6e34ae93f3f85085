from palmnet.cli.app import main

main()
