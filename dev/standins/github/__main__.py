from dev.standins.github.server import main

main()
