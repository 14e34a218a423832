import UDPCommandLine

// The studio's web server is not linked here: `udp studio` runs `udp-studio`, which is.
await runUDPCommandLine(studioWebPart: .separate)
