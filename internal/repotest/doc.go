// SPDX-License-Identifier: MIT

// Package repotest holds repository-wide checks (in its tests): the import
// rules of DESIGN.md and a doc comment on every package.
package repotest
