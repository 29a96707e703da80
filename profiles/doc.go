// Package profiles holds the named collection profiles, embedded in the
// collector.
package profiles
