/// The Command field of an IP Messenger packet: a decimal `UInt32` whose low 8 bits are the mode and whose other
/// bits are option flags.
///
/// Option bits mean different things under different modes (0x100 is ABSENCEOPT on presence packets and
/// SENDCHECKOPT on SENDMSG), so both names exist and the reader picks the one for the mode at hand.
public struct IPMsgCommand: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The whole field as sent.
    public var rawValue: UInt32

    /// Makes a command from the whole field.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Makes a command from a mode and option flags.
    public init(_ mode: Mode, _ options: Options = []) {
        rawValue = UInt32(mode.rawValue) | (options.rawValue & ~0xFF)
    }

    /// The low 8 bits.
    public var mode: Mode { Mode(rawValue: UInt8(truncatingIfNeeded: rawValue)) }

    /// Every bit above the mode.
    public var options: Options { Options(rawValue: rawValue & ~0xFF) }

    /// Whether every flag in `flags` is set.
    public func has(_ flags: Options) -> Bool { options.isSuperset(of: flags) }

    public var description: String { "\(mode)\(options.isEmpty ? "" : "|0x" + String(options.rawValue, radix: 16))" }

    /// A command mode (the low 8 bits). Unknown modes keep their value, so a packet from a newer client still
    /// decodes; the messenger ignores what it does not know.
    public struct Mode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let noOperation = Mode(rawValue: 0x00)
        /// "I am here" to everyone; every client answers with ``answerEntry``.
        public static let entry = Mode(rawValue: 0x01)
        /// "I am leaving".
        public static let exit = Mode(rawValue: 0x02)
        /// The unicast answer to ``entry``.
        public static let answerEntry = Mode(rawValue: 0x03)
        /// A nick or absence status change; not answered.
        public static let absence = Mode(rawValue: 0x04)
        public static let isGetList = Mode(rawValue: 0x10)
        public static let okGetList = Mode(rawValue: 0x11)
        public static let getList = Mode(rawValue: 0x12)
        public static let answerList = Mode(rawValue: 0x13)
        public static let isGetList2 = Mode(rawValue: 0x18)
        /// A message; Extra is the text.
        public static let sendMessage = Mode(rawValue: 0x20)
        /// The acknowledgement of a message; Extra is the message's packet number in decimal.
        public static let receivedMessage = Mode(rawValue: 0x21)
        public static let readMessage = Mode(rawValue: 0x30)
        public static let deleteMessage = Mode(rawValue: 0x31)
        public static let answerReadMessage = Mode(rawValue: 0x32)
        public static let getInfo = Mode(rawValue: 0x40)
        public static let sendInfo = Mode(rawValue: 0x41)
        public static let getAbsenceInfo = Mode(rawValue: 0x50)
        public static let sendAbsenceInfo = Mode(rawValue: 0x51)
        /// Over TCP: "send me file data"; Extra is `packetNo:fileID:offset` in hex.
        public static let getFileData = Mode(rawValue: 0x60)
        public static let releaseFiles = Mode(rawValue: 0x61)
        public static let getDirectoryFiles = Mode(rawValue: 0x62)

        static let names: [UInt8: String] = [
            0x00: "NOOPERATION", 0x01: "BR_ENTRY", 0x02: "BR_EXIT", 0x03: "ANSENTRY", 0x04: "BR_ABSENCE",
            0x10: "BR_ISGETLIST", 0x11: "OKGETLIST", 0x12: "GETLIST", 0x13: "ANSLIST", 0x18: "BR_ISGETLIST2",
            0x20: "SENDMSG", 0x21: "RECVMSG", 0x30: "READMSG", 0x31: "DELMSG", 0x32: "ANSREADMSG",
            0x40: "GETINFO", 0x41: "SENDINFO", 0x50: "GETABSENCEINFO", 0x51: "SENDABSENCEINFO",
            0x60: "GETFILEDATA", 0x61: "RELEASEFILES", 0x62: "GETDIRFILES",
        ]

        /// The specification's name (`BR_ENTRY`, `SENDMSG`...), or `0xNN` for a mode it does not define.
        public var description: String {
            Self.names[rawValue] ?? "0x" + String(rawValue, radix: 16)
        }
    }

    /// Option flags (bits 8-31).
    public struct Options: OptionSet, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// On presence packets: the sender is away.
        public static let absence = Options(rawValue: 0x100)
        /// On SENDMSG: please acknowledge with RECVMSG.
        public static let sendCheck = Options(rawValue: 0x100)
        /// On SENDMSG: a sealed message.
        public static let secret = Options(rawValue: 0x200)
        /// On SENDMSG: sent to everyone; never acknowledged.
        public static let broadcast = Options(rawValue: 0x400)
        /// On SENDMSG: sent to several users.
        public static let multicast = Options(rawValue: 0x800)
        /// On SENDMSG: an automatic answer (absence reply); never acknowledged, never answered.
        public static let autoReturn = Options(rawValue: 0x2000)
        /// On SENDMSG: a resend of an earlier packet.
        public static let retry = Options(rawValue: 0x4000)
        /// On SENDMSG: please report when read.
        public static let readCheck = Options(rawValue: 0x100000)
        /// Files are attached (after the text and a NUL).
        public static let fileAttach = Options(rawValue: 0x200000)
        /// The text fields are UTF-8.
        public static let utf8 = Options(rawValue: 0x800000)
        /// The sender accepts UTF-8.
        public static let capableOfUTF8 = Options(rawValue: 0x1000000)
    }
}
