/// The version of UDPKit and the `udp` command.
public enum UDPKitVersion {
    /// The version string, `MAJOR.MINOR.PATCH`.
    public static let current = "0.1.0"
}
