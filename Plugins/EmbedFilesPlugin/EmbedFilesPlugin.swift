import Foundation
import PackagePlugin

/// Embeds text files into the module being built, at build time, with the `EmbedFiles` tool:
/// `Server` gets `EmbeddedAssets` (Sources/Server/Templates/*.mustache and everything under Public/),
/// `Store` gets `EmbeddedMigrations` (migrations/*.sql). Every file, and each folder itself, is a
/// declared input, so editing one rebuilds the module. SwiftPM runs this plugin again (and so
/// lists a new file, or forgets a removed one) only when a target's folder changes shape: hence
/// the links Sources/Server/Public and Sources/Store/migrations to the top-level folders.
@main
struct EmbedFilesPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let tool = try context.tool(named: "EmbedFiles").url
        let folders: [URL]
        let kind: String
        switch target.name {
        case "Server":
            kind = "assets"
            folders = [root.appending(path: "Sources/Server/Templates"), root.appending(path: "Public")]
        case "Store":
            kind = "migrations"
            folders = [root.appending(path: "migrations")]
        default:
            throw EmbedFilesPluginError(description: "EmbedFilesPlugin knows Server and Store, not \(target.name)")
        }
        let output = context.pluginWorkDirectoryURL.appending(
            path: kind == "assets" ? "EmbeddedAssets.swift" : "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(kind) into \(target.name)",
                executable: tool,
                arguments: [kind, output.path] + folders.map(\.path),
                inputFiles: try folders.flatMap { try filesAndFolders(under: $0) },
                outputFiles: [output])
        ]
    }

    /// The folder, every folder below it and every file in them.
    func filesAndFolders(under folder: URL) throws -> [URL] {
        guard let walk = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else {
            throw EmbedFilesPluginError(description: "cannot read \(folder.path)")
        }
        return [folder] + walk.compactMap { $0 as? URL }
    }
}

struct EmbedFilesPluginError: Error, CustomStringConvertible {
    let description: String
}
