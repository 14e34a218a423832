import ArgumentParser
import UDPKit

struct Broadcast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broadcast",
        abstract: "Send a datagram to every broadcast address: each interface's subnet, or the one --interface names.",
        discussion: """
            Replaces the classic Python broadcaster (SO_BROADCAST + sendto(('<broadcast>', 2425))), whose 255.255.255.255 fails with "Network is unreachable" on a host without a default route. This sends to the directed broadcast address of every interface that is up and can broadcast (see 'udp interfaces'), which each subnet's own route carries. Short for: udp send '<broadcast>' PORT MESSAGE...

            Examples:
              udp broadcast 2425 1:100:will:will-pc:32:will broadcast
                                            an IP Messenger / FeiQ packet
              udp broadcast 9999 hello --interface eth0        one subnet only
              udp broadcast 9999 hi --limited --interface eth0
                                            255.255.255.255 itself, out of eth0
              udp broadcast 9999 --hex 'ff ff 00 01' --count 3 --interval 1s
            """
    )

    @Argument(help: "The port to send to.")
    var port: String

    @Argument(
        help: ArgumentHelp(
            "The message words, sent as one datagram; with none, one datagram per line of stdin.", valueName: "message")
    )
    var message: [String] = []

    @Option(help: ArgumentHelp("Send only on this interface.", valueName: "name"))
    var interface: String?

    @Flag(
        help:
            "Send to 255.255.255.255 itself (it needs a default route, or --interface) rather than to each subnet's broadcast address."
    )
    var limited = false

    @OptionGroup var outgoing: OutgoingOptions

    func run() async throws {
        useOneEventLoop()
        let port = try UDPEndpoint.parsePort(port)
        let outgoing = OutgoingSettings(self.outgoing)
        try outgoing.check(message: message)
        try await outgoing.deliver(
            message: message, plan: try SendPlan.broadcast(port: port, interface: interface, limited: limited))
    }
}
