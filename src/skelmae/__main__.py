from skelmae.cli import main

main()
