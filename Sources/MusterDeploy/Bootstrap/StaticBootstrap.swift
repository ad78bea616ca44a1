import MusterPlan

/// `initial-cluster` in every member's conf.yml says it all: nothing to do around the members.
struct StaticBootstrap: BootstrapMode {}
