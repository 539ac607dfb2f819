"""The verification engine: submission loading, sandbox, checks, reports and plots."""
