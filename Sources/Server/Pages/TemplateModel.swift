import Mustache

/// Page models show templates their derived flags (`hasRows`) too: swift-mustache reads stored
/// properties through Mirror, which does not see computed ones.
protocol TemplateModel: MustacheParent {
    /// The value of a computed property a template asks for, or nil for a stored one.
    func computed(_ name: String) -> Any?
}

extension TemplateModel {
    func child(named name: String) -> Any? {
        if let value = computed(name) { return value }
        guard let stored = Mirror(reflecting: self).children.first(where: { $0.label == name }) else { return nil }
        let optional = Mirror(reflecting: stored.value)
        return optional.displayStyle == .optional ? optional.children.first?.value : stored.value
    }
}
