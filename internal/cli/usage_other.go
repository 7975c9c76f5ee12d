//go:build !unix

package cli

// processUsage returns nothing where getrusage is not available.
func processUsage() map[string]any { return nil }
