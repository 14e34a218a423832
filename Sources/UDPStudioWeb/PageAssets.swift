/// The page's files, compiled into the binary (SwiftPM embeds them as byte arrays), so an installed `udp` needs
/// nothing beside it.
enum PageAssets {
    static func file(_ name: String) -> ([UInt8], String)? {
        switch name {
        case "index.html": return (PackageResources.index_html, "text/html; charset=utf-8")
        case "style.css": return (PackageResources.style_css, "text/css; charset=utf-8")
        case "app.js": return (PackageResources.app_js, "text/javascript; charset=utf-8")
        case "log.js": return (PackageResources.log_js, "text/javascript; charset=utf-8")
        case "chart.js": return (PackageResources.chart_js, "text/javascript; charset=utf-8")
        case "bytes.js": return (PackageResources.bytes_js, "text/javascript; charset=utf-8")
        default: return nil
        }
    }
}
