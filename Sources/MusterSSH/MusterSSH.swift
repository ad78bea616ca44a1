// MusterSSH
