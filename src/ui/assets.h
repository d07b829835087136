/*
 * assets.h - the dashboard's files (ui/: the .html, .css and .js), embedded in
 * the binary at build time.
 *
 * scripts/embed-ui.cmake turns each file of ui/ into a byte array of a
 * generated C file in the build tree (never committed); assets.c looks
 * them up. Nothing here knows HTTP: src/api/ui.c serves them at /ui/.
 */
#ifndef CTKN_UI_ASSETS_H
#define CTKN_UI_ASSETS_H

#include <stddef.h>

/* One embedded file, as the generated table holds it. */
struct ctkn__ui_file {
  const char *name;          /* its name in ui/, e.g. "app.js" */
  const unsigned char *data; /* its bytes (and a NUL past them) */
  size_t len;                /* without that NUL */
};

/* The generated table (build tree: ui_assets.c), sorted by name. */
extern const struct ctkn__ui_file ctkn__ui_files[];
extern const size_t ctkn__ui_nfiles;

/* The file called name and its Content-Type (by its extension: html,
 * css, js, svg, png; anything else application/octet-stream), or NULL
 * when no embedded file has that name. */
const struct ctkn__ui_file *ctkn__ui_file(const char *name, const char **ctype);

#endif /* CTKN_UI_ASSETS_H */
