/// Static bootstrap: every founder's `initial-cluster` lists every member, and
/// `initial-cluster-token` (the inventory's `token:`) keeps clusters apart.
struct StaticPlanning: ModePlanning {
    let token: String

    var idToken: String? { token }
    var foundsStatically: Bool { true }

    func plan(members: [MemberPlan]) throws -> BootstrapPlan { .staticCluster(token: token) }

    static func addFoundingKeys(token: String, to context: inout TemplateContext) {
        context["initialClusterToken"] = .text(token)
    }
}
