from backchannel.entry import main

main()
