// MusterSandbox
