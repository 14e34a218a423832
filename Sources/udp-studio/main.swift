import UDPCommandLine
import UDPStudioWeb

// The `udp` command line with the studio's web server linked in: `udp studio` replaces itself with
// `udp-studio studio …` (the same arguments), so that `udp`'s other commands start without the web server.
await runUDPCommandLine(
    studioWebPart: .linked { studio, host, port, ready in
        let server = StudioWebServer(studio: studio, host: host, port: port)
        return server.application { bound in ready(server.pageURL(port: bound)) }
    })
