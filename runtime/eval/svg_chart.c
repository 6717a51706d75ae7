/* A dependency-free SVG scatter chart: panels side by side, axes from 0 with
 * rounded ticks, one colour per series, a label beside each point moved off
 * its neighbours' labels. Enough for bllm-bench --chart. */
#include "runtime/eval/bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

enum { PANEL_W = 540, PANEL_H = 420, M_LEFT = 72, M_RIGHT = 24, M_TOP = 44, M_BOTTOM = 56, HEAD_H = 64 };
static const double FONT_W = 6.4; /* average glyph width at 11 px, for label boxes */

static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
enum { N_COLOURS = sizeof colours / sizeof colours[0] };

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Step of about max/5 rounded to 1, 2, 2.5 or 5 x 10^k; axis end a multiple
 * of it at or above max. */
static void nice_axis(double max, double *step, double *end, int *decimals)
{
    if (!(max > 0) || !isfinite(max))
        max = 1;
    double raw = max / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    *step = m * mag;
    *end = ceil(max / *step - 1e-9) * *step;
    if (*end < max * 1.04) /* leave room above the highest point */
        *end += *step;
    int d = (int)-floor(log10(*step) + 1e-9);
    if (m == 2.5)
        d++;
    *decimals = d > 0 ? d : 0;
}

typedef struct {
    double x0, y0, x1, y1;
} box;

static bool overlaps(const box *a, const box *b)
{
    return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void panel(FILE *f, const bllm_chart_panel *p, double ox, double oy)
{
    double pw = PANEL_W - M_LEFT - M_RIGHT, ph = PANEL_H - M_TOP - M_BOTTOM;
    double px0 = ox + M_LEFT, py0 = oy + M_TOP; /* plot area, top-left */
    double xmax = 0, ymax = 0;
    for (int i = 0; i < p->n_points; i++) {
        if (isfinite(p->points[i].x) && p->points[i].x > xmax) xmax = p->points[i].x;
        if (isfinite(p->points[i].y) && p->points[i].y > ymax) ymax = p->points[i].y;
    }
    double xs, xe, ys, ye;
    int xd, yd;
    nice_axis(xmax, &xs, &xe, &xd);
    nice_axis(ymax, &ys, &ye, &yd);

    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">",
            px0 + pw / 2, oy + 26);
    put_escaped(f, p->title);
    fputs("</text>\n", f);
    /* grid and ticks */
    for (int k = 0; xs * k <= xe + 1e-9; k++) {
        double v = xs * k, x = px0 + pw * v / xe;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", x, py0, x,
                py0 + ph);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, py0 + ph, x,
                py0 + ph + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%.*f</text>\n", x,
                py0 + ph + 18, xd, v);
    }
    for (int k = 0; ys * k <= ye + 1e-9; k++) {
        double v = ys * k, y = py0 + ph - ph * v / ye;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", px0, y,
                px0 + pw, y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", px0 - 5, y, px0,
                y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.*f</text>\n", px0 - 8,
                y + 4, yd, v);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            px0, py0, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">", px0 + pw / 2,
            py0 + ph + 40);
    put_escaped(f, p->x_label);
    fputs("</text>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 %.1f %.1f)\">", ox + 18, py0 + ph / 2, ox + 18, py0 + ph / 2);
    put_escaped(f, p->y_label);
    fputs("</text>\n", f);

    /* points, then labels placed greedily away from the points and the
     * labels already placed */
    box *placed = calloc((size_t)p->n_points * 2 + 1, sizeof *placed);
    int n_placed = 0;
    for (int i = 0; i < p->n_points; i++) {
        const bllm_chart_point *pt = &p->points[i];
        if (!isfinite(pt->x) || !isfinite(pt->y))
            continue;
        double x = px0 + pw * pt->x / xe, y = py0 + ph - ph * pt->y / ye;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"#000\" stroke-width=\"0.6\"/>\n",
                x, y, colours[(pt->series % N_COLOURS + N_COLOURS) % N_COLOURS]);
        if (placed)
            placed[n_placed++] = (box){x - 6, y - 6, x + 6, y + 6};
    }
    for (int i = 0; placed && i < p->n_points; i++) {
        const bllm_chart_point *pt = &p->points[i];
        if (!pt->label || !isfinite(pt->x) || !isfinite(pt->y))
            continue;
        double x = px0 + pw * pt->x / xe, y = py0 + ph - ph * pt->y / ye;
        double w = FONT_W * (double)strlen(pt->label);
        bool left = x + 9 + w > px0 + pw; /* no room on the right */
        box b = {0};
        double ty = y;
        for (int attempt = 0; attempt < 24; attempt++) {
            double dy = (attempt + 1) / 2 * 13.0 * (attempt % 2 ? 1 : -1);
            ty = y + dy;
            b = left ? (box){x - 9 - w, ty - 9, x - 9, ty + 3} : (box){x + 9, ty - 9, x + 9 + w, ty + 3};
            bool clash = b.y0 < py0 || b.y1 > py0 + ph;
            for (int k = 0; !clash && k < n_placed; k++)
                clash = overlaps(&b, &placed[k]);
            if (!clash)
                break;
        }
        placed[n_placed++] = b;
        if (ty != y) /* a leader line when the label moved away */
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-width=\"0.7\"/>\n",
                    x, y, left ? b.x1 : b.x0, ty - 3);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\"%s>", left ? b.x1 - 1 : b.x0 + 1, ty,
                left ? " text-anchor=\"end\"" : "");
        put_escaped(f, pt->label);
        fputs("</text>\n", f);
    }
    free(placed);
}

bllm_status bllm_svg_chart_write(const char *path, const char *title, const bllm_chart_panel *panels,
                                 int n_panels, const char *const *series_names, int n_series)
{
    if (!path || n_panels < 1)
        return bllm_fail(BLLM_ERR_ARG, "chart: no output path or no panel");
    FILE *f = fopen(path, "w");
    if (!f)
        return bllm_fail(BLLM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    int width = PANEL_W * n_panels, height = PANEL_H + HEAD_H;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\" text-anchor=\"middle\">",
            width / 2);
    put_escaped(f, title);
    fputs("</text>\n", f);
    /* legend, centred under the title */
    double lw = 0;
    for (int s = 0; s < n_series; s++)
        lw += 24 + FONT_W * (double)strlen(series_names[s] ? series_names[s] : "") + 18;
    double lx = (width - lw) / 2;
    for (int s = 0; s < n_series; s++) {
        const char *name = series_names[s] ? series_names[s] : "";
        fprintf(f, "<circle cx=\"%.1f\" cy=\"46\" r=\"5\" fill=\"%s\" stroke=\"#000\" stroke-width=\"0.6\"/>\n",
                lx + 6, colours[s % N_COLOURS]);
        fprintf(f, "<text x=\"%.1f\" y=\"50\" font-size=\"12\">", lx + 16);
        put_escaped(f, name);
        fputs("</text>\n", f);
        lx += 24 + FONT_W * (double)strlen(name) + 18;
    }
    for (int i = 0; i < n_panels; i++)
        panel(f, &panels[i], PANEL_W * i, HEAD_H);
    fputs("</svg>\n", f);
    if (ferror(f) | fclose(f))
        return bllm_fail(BLLM_ERR_IO, "writing %s failed", path);
    return BLLM_OK;
}
