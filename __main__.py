from ggctl.cli import main

main()
