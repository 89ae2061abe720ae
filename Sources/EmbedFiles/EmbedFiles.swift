import Foundation

/// The build tool behind `Plugins/EmbedFilesPlugin`: writes one Swift file that carries text files
/// as string literals, so an installed `polyak` serves its pages and applies its schema from any
/// directory. Two kinds, one per module:
///
///     EmbedFiles assets OUTPUT TEMPLATES_DIR PUBLIC_DIR   # Server: EmbeddedAssets
///     EmbedFiles migrations OUTPUT MIGRATIONS_DIR         # Store: EmbeddedMigrations
///
/// A file's text is embedded without its final newline (what the pages and the schema have always
/// served). A problem stops the build with a message naming the file.
@main
enum EmbedFiles {
    static func main() {
        do {
            let arguments = Array(CommandLine.arguments.dropFirst())
            switch (arguments.first, arguments.count) {
            case ("assets", 4):
                try write(assets(templates: arguments[2], publicFolder: arguments[3]), to: arguments[1])
            case ("migrations", 3):
                try write(migrations(folder: arguments[2]), to: arguments[1])
            default:
                throw EmbedError(
                    "usage: EmbedFiles assets OUTPUT TEMPLATES PUBLIC | EmbedFiles migrations OUTPUT MIGRATIONS")
            }
        } catch {
            FileHandle.standardError.write(Data("EmbedFiles: \(error)\n".utf8))
            exit(1)
        }
    }

    /// `EmbeddedAssets.templates` (by name, without `.mustache`) and `.publicFiles` (by path under Public/).
    static func assets(templates: String, publicFolder: String) throws -> String {
        let pages = try files(in: templates, recursive: false).filter { $0.hasSuffix(".mustache") }
        let statics = try files(in: publicFolder, recursive: true)
        var out = header("Sources/Server/Templates/*.mustache and Public/")
        out += "enum EmbeddedAssets {\n"
        out += "    /// Page templates by name (file name without .mustache).\n"
        out += "    static let templates: [String: String] = [\n"
        for name in pages {
            out += "        \(literal(String(name.dropLast(".mustache".count)))): \(literal(try text(templates, name))),\n"
        }
        out += "    ]\n\n"
        out += "    /// Static files by path under Public/.\n"
        out += "    static let publicFiles: [String: String] = [\n"
        for path in statics {
            out += "        \(literal(path)): \(literal(try text(publicFolder, path))),\n"
        }
        return out + "    ]\n}\n"
    }

    /// `EmbeddedMigrations.all`: every `NNNN_name.sql`, numbered 1, 2, … without gaps.
    static func migrations(folder: String) throws -> String {
        let names = try files(in: folder, recursive: false).filter { $0.hasSuffix(".sql") }
        var out = header("migrations/*.sql")
        out += "enum EmbeddedMigrations {\n"
        out += "    static let all: [Migration] = [\n"
        for (index, name) in names.enumerated() {
            let digits = name.prefix(4)
            guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), name.dropFirst(4).first == "_", let version = Int(digits)
            else {
                throw EmbedError("\(folder)/\(name): a migration is named NNNN_what.sql (four digits, then _)")
            }
            guard version == index + 1 else {
                throw EmbedError("\(folder)/\(name): migrations are numbered 0001, 0002, … without gaps; expected \(index + 1)")
            }
            out += "        Migration(version: \(version), name: \(literal(name)), sql: \(literal(try text(folder, name)))),\n"
        }
        return out + "    ]\n}\n"
    }

    static func header(_ source: String) -> String {
        "// Generated at build time by Plugins/EmbedFilesPlugin (Sources/EmbedFiles) from \(source).\n"
    }

    /// Regular files under `folder` as sorted relative paths (hidden files skipped: editors' litter).
    static func files(in folder: String, recursive: Bool) throws -> [String] {
        let manager = FileManager.default
        let names = try recursive ? manager.subpathsOfDirectory(atPath: folder) : manager.contentsOfDirectory(atPath: folder)
        return names.filter { path in
            var isFolder: ObjCBool = false
            let hidden = path.split(separator: "/").contains { $0.hasPrefix(".") }
            return !hidden && manager.fileExists(atPath: folder + "/" + path, isDirectory: &isFolder) && !isFolder.boolValue
        }
        .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// The file's UTF-8 text without its final newline.
    static func text(_ folder: String, _ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + path))
        guard var text = String(data: data, encoding: .utf8) else { throw EmbedError("\(folder)/\(path) is not UTF-8") }
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// A one-line Swift string literal: any text round-trips, whatever quotes or backslashes it holds.
    static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Writes only when the text changed, so an unchanged input does not recompile the module.
    static func write(_ text: String, to path: String) throws {
        if let old = try? String(contentsOfFile: path, encoding: .utf8), old == text { return }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

struct EmbedError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
