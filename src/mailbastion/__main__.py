from mailbastion.cli import main

main()
