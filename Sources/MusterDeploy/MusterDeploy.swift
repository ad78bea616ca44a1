// MusterDeploy
