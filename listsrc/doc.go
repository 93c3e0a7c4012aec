// SPDX-License-Identifier: MIT

// Package listsrc fetches block lists given as http(s) URLs into a local
// cache, so that dnstun starts from the last good copy and refreshes it in
// the background.
//
// Invariants:
//   - A download replaces the cached copy only when it is a list: it must
//     parse (filter.Builder.ParseList accepts it, so an HTML error page or
//     a binary is refused) and fit MaxSize. A failed or refused download
//     keeps the last good copy and says why.
//   - Requests are conditional (If-None-Match / If-Modified-Since from the
//     last good response), so an unchanged list costs one small exchange.
//   - The cached file and its metadata are replaced atomically (temporary
//     file, rename); readers never see half a list.
package listsrc
