// Package loader verifies received segments and loads them into MariaDB,
// exactly once.
package loader
