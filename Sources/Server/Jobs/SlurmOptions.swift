/// `polyak serve --executor slurm …`: where runs go and how the nodes reach back.
public struct SlurmOptions: Sendable {
    /// Folder every node sees at the same path: holds `runs/<id>/` (the server's data directory).
    public var sharedDirectory: String
    public var partition: String?
    /// More `sbatch` options, e.g. `--time=02:00:00` (after Polyak's own, so they win).
    public var extraOptions: [String]
    /// This server's URL as the nodes reach it, e.g. `http://head-node:8080`.
    public var publicURL: String
    /// `polyak` as the nodes find it.
    public var trainerBinary: String
    /// The server's token file, when its token came from one (the nodes read it at the same path).
    public var tokenFile: String?
    /// Seconds between two `squeue` polls.
    public var pollInterval: Double
    /// How often a run is submitted again after its job was interrupted (preempted, node failure).
    public var maxResubmissions: Int
    var commands = SlurmCommands()

    public init(
        sharedDirectory: String, partition: String? = nil, extraOptions: [String] = [], publicURL: String,
        trainerBinary: String, tokenFile: String? = nil, pollInterval: Double = 2,
        maxResubmissions: Int = 3
    ) {
        self.sharedDirectory = sharedDirectory
        self.partition = partition
        self.extraOptions = extraOptions
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        self.trainerBinary = trainerBinary
        self.tokenFile = tokenFile
        self.pollInterval = pollInterval
        self.maxResubmissions = maxResubmissions
    }
}
