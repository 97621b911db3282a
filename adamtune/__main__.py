from adamtune.cli import main

main()
