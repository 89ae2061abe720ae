/// Why a spec was refused, naming the field as the user wrote it.
///
/// `field` is a path into the JSON the user sent: `optim.lr`, `data.augment.pad_crop`,
/// `averaging[0].decays[1]` when `averaging` is a list, `averaging.decays[0]` when it is a single
/// object, and `""` for the document as a whole. The server puts both parts in its error JSON
/// (`{"error": {"status": 400, "message": description, "field": field}}`).
public struct SpecError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Path of the offending field; `""` for the whole document.
    public let field: String
    /// What is wrong, phrased to follow the field: `must be in (0, 1), got 1.5`.
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    /// The field and the message in one sentence:
    /// `averaging.decays[0] must be in (0, 1), got 1.5`; for the whole document, `document <message>`.
    public var description: String {
        (field.isEmpty ? "document" : field) + " " + message
    }
}
