from fabpass.cli import main

main()
