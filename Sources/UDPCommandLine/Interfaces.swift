import ArgumentParser
import UDPKit
import UDPText

struct Interfaces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interfaces",
        abstract: "List the network interfaces: index, flags, addresses with prefix length, broadcast address, MTU.",
        discussion: """
            Shows where 'udp broadcast' sends (every interface that is up with a broadcast address) and the names to give --interface.

            Examples:
              udp interfaces                  every interface
              udp interfaces eth0             one interface
              udp interfaces --json | jq .    one JSON object per interface
            """
    )

    @Argument(help: ArgumentHelp("Show only this interface.", valueName: "name"))
    var name: String?

    @Flag(
        help:
            "One JSON object per interface: name, index, flags, mtu, addresses (family, address, prefix, broadcast, scope)."
    )
    var json = false

    func run() throws {
        let interfaces = try name.map { [try NetworkInterface.lookup($0)] } ?? NetworkInterface.all()
        for interface in interfaces {
            Terminal.writeStdout(json ? Self.json(interface) + "\n" : Self.text(interface))
        }
    }

    /// `2: eth0  <up,running,broadcast,multicast>  mtu 1500`, then one indented line per address.
    static func text(_ interface: NetworkInterface) -> String {
        var out =
            "\(interface.index): \(TerminalText.escape(interface.name))  <\(interface.flags.names.joined(separator: ","))>"
        if let mtu = interface.mtu { out += "  mtu \(mtu)" }
        out += "\n"
        for address in interface.addresses {
            out += "    \(address.family) \(address.address)/\(address.prefixLength)"
            if let broadcast = address.broadcast { out += "  broadcast \(broadcast)" }
            if address.scopeID != 0 { out += "  scope link" }
            out += "\n"
        }
        return out
    }

    static func json(_ interface: NetworkInterface) -> String {
        let addresses = interface.addresses.map { address in
            JSONText.object([
                ("family", .string(address.family.rawValue)),
                ("address", .string(address.address)),
                ("prefix", .int(address.prefixLength)),
                ("broadcast", address.broadcast.map { .string($0) } ?? .null),
                ("scope", address.scopeID == 0 ? .null : .int(Int(address.scopeID))),
            ])
        }
        return JSONText.object([
            ("name", .string(interface.name)),
            ("index", .int(interface.index)),
            ("flags", .raw(JSONText.array(interface.flags.names.map { .string($0) }))),
            ("mtu", interface.mtu.map { .int($0) } ?? .null),
            ("addresses", .raw(JSONText.array(addresses.map { .raw($0) }))),
        ])
    }
}
