// libFuzzer entry point for the room codec. Not part of the package: it is compiled together
// with Sources/RoomProtocol into one module, see Fuzz/run.sh.

/// Decodes arbitrary bytes in both directions. Whatever decodes must re-encode to exactly the
/// same bytes and decode again to an equal packet (the codec is canonical); the policy checks
/// must cope with whatever strings the decoder lets through. Any violation traps, which
/// libFuzzer reports as a crash with the input saved.
@_cdecl("LLVMFuzzerTestOneInput")
public func roomCodecFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []

    if let packet = try? RoomCodec.decodeClientPacket(bytes) {
        guard let encoded = try? RoomCodec.encode(packet), encoded == bytes else {
            fatalError("client packet does not re-encode to its bytes: \(packet)")
        }
        guard (try? RoomCodec.decodeClientPacket(encoded)) == packet else {
            fatalError("client packet does not decode to itself: \(packet)")
        }
        exercisePolicy(packet)
    }
    if let packet = try? RoomCodec.decodeServerPacket(bytes) {
        guard let encoded = try? RoomCodec.encode(packet), encoded == bytes else {
            fatalError("server packet does not re-encode to its bytes: \(packet)")
        }
        guard (try? RoomCodec.decodeServerPacket(encoded)) == packet else {
            fatalError("server packet does not decode to itself: \(packet)")
        }
    }
    if var reply = RoomCodec.versionMismatchReply(to: bytes) {
        guard reply.count <= 3 * bytes.count else { fatalError("version mismatch reply amplifies") }
        // A version-1 JOIN is answered in version 1, whose REFUSED has this version's layout.
        reply[2] = RoomWire.version
        guard case .refused(_, .unsupportedVersion, _)? = try? RoomCodec.decodeServerPacket(reply) else {
            fatalError("version mismatch reply does not decode")
        }
    }
    if let refusal = RoomCodec.decodeVersionRefusal(bytes) {
        // What a client reads from an older server must be what that server encoded.
        guard var reencoded = try? RoomCodec.encode(ServerPacket.refused(nonce: refusal.nonce, reason: .unsupportedVersion, text: refusal.text)) else {
            fatalError("version refusal does not re-encode")
        }
        reencoded[2] = 1
        guard reencoded == bytes else { fatalError("version refusal is not canonical") }
    }
    return 0
}

private func exercisePolicy(_ packet: ClientPacket) {
    let limits = RoomLimits.standard
    switch packet {
    case .join(_, let nick), .command(_, _, .changeNick(let nick)):
        _ = try? limits.checkNick(nick)
        _ = RoomLimits.nickKey(nick)
    case .command(_, _, .say(_, let text)):
        _ = try? limits.checkText(text)
    case .command(_, _, .privateMessage(let to, let text)):
        _ = RoomLimits.nickKey(to)
        _ = try? limits.checkText(text)
    default:
        break
    }
}
