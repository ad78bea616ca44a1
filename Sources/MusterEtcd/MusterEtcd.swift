// MusterEtcd
