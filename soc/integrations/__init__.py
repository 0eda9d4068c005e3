"""The integration map of a tenant (onboarding phase 2): category states from its data, what
missing categories would switch on, and the plan of sources to integrate."""
