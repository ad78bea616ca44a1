// MusterPlan
