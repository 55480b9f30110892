"""Figure layout with margins measured from the drawn text, so no title, label, legend or caption is
clipped at any panel count, and the legend sits below the panels, outside the data.

A figure is a grid of panels of a fixed size in inches. Once the panels are drawn, finish() measures
what sticks out of each panel (tick labels, axis labels, panel titles), wraps the figure title and
the caption to the figure's width, lays the legend out in as many columns as fit, and sizes the
figure around all of it. Everything is placed in inches, so the layout holds at any dpi and in
every output format. (constrained_layout places neither a caption nor a figure legend outside the
panels in matplotlib 3.6, and tight_layout costs about half the drawing time.)
"""
PANEL_W, PANEL_H = 4.0, 2.8    # inches of data area per panel
PAD = 0.12                      # inches between blocks and around the edge
GAP = 0.25                      # inches between one panel's decorations and the next panel's
MIN_WIDTH = 6.4                 # a one-panel figure is widened to this, so its text wraps less
TITLE_SIZE, LEGEND_SIZE, CAPTION_SIZE = 11, 8, 7


def grid_for(n, max_cols=3):
    """Rows and columns for N panels that flow into rows of at most MAX_COLS."""
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def new_figure(plt, rows, cols, dpi, sharey=False, n=None):
    """A figure with a rows x cols grid of PANEL_W x PANEL_H panels, roomy until finish(). With N,
    only the first N grid places (row by row) get a panel; the others are None."""
    fig = plt.figure(figsize=(cols * (PANEL_W + 2.0) + 1.0, rows * (PANEL_H + 2.0) + 3.0), dpi=dpi)
    axes = fig.subplots(rows, cols, squeeze=False, sharey="row" if sharey else False).tolist()
    W, H = fig.get_size_inches()
    for r in range(rows):
        for c in range(cols):
            if n is not None and r * cols + c >= n:
                fig.delaxes(axes[r][c])
                axes[r][c] = None
                continue
            axes[r][c].set_position([(1.5 + c * (PANEL_W + 2.0)) / W, 1 - (2.0 + (r + 1) * (PANEL_H + 2.0) - 2.0) / H,
                                     PANEL_W / W, PANEL_H / H])
    return fig, axes


def panels(axes):
    """The grid's panels, row by row, without the empty places."""
    return [ax for row in axes for ax in row if ax is not None]


def _width(renderer, text, size, weight="normal"):
    from matplotlib.font_manager import FontProperties
    w, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size, weight=weight), ismath=False)
    return w


def wrap(renderer, text, size, width_px, weight="normal"):
    """TEXT with every line broken at spaces so that it fits WIDTH_PX (a word longer than the line,
    such as a long path, is broken inside). Words are measured once and lines estimated as their
    sum (measuring every candidate line costs a font layout each); each line is then measured
    whole, and one that the estimate got wrong gives up its last word."""
    measured = {}

    def width(t):
        if t not in measured:
            measured[t] = _width(renderer, t, size, weight)
        return measured[t]

    space = width("x x") - width("xx")
    out = []
    for line in text.split("\n"):
        words = []
        for word in line.split(" "):
            while len(word) > 1 and width(word) > width_px:  # cut a word wider than the line
                k = len(word) - 1
                while k > 1 and width(word[:k]) > width_px:
                    k -= 1
                words.append(word[:k])
                word = word[k:]
            words.append(word)
        lines, cur, cur_w = [], [], 0.0
        for word in words:
            w = width(word)
            if cur and cur_w + space + w > width_px:
                lines.append(cur)
                cur, cur_w = [], 0.0
            cur_w = w if not cur else cur_w + space + w
            cur.append(word)
        lines.append(cur)
        i = 0
        while i < len(lines):
            if len(lines[i]) > 1 and _width(renderer, " ".join(lines[i]), size, weight) > width_px:
                spill = lines[i].pop()
                if i + 1 < len(lines):
                    lines[i + 1].insert(0, spill)
                else:
                    lines.append([spill])
                continue
            i += 1
        out += [" ".join(ws) for ws in lines]
    return "\n".join(out)


def _overhangs(fig, axes, renderer):
    """Max inches by which the panels' decorations stick out left, right, below and above."""
    dpi = fig.dpi
    left = right = bottom = top = 0.0
    for ax in panels(axes):
        tight = ax.get_tightbbox(renderer)
        box = ax.get_window_extent(renderer)
        left = max(left, (box.x0 - tight.x0) / dpi)
        right = max(right, (tight.x1 - box.x1) / dpi)
        bottom = max(bottom, (box.y0 - tight.y0) / dpi)
        top = max(top, (tight.y1 - box.y1) / dpi)
    return left, right, bottom, top


def _row_major(handles, labels, ncol):
    """The entries padded to a full grid and reordered so that matplotlib, which fills a legend
    column by column, shows them row by row in the given order."""
    from matplotlib.patches import Rectangle
    nrows = (len(handles) + ncol - 1) // ncol
    blank = Rectangle((0, 0), 0, 0, visible=False)
    h = list(handles) + [blank] * (nrows * ncol - len(handles))
    lab = list(labels) + [""] * (nrows * ncol - len(labels))
    order = [r * ncol + c for c in range(ncol) for r in range(nrows)]
    return [h[i] for i in order], [lab[i] for i in order]


def finish(fig, axes, title, caption, handles, labels, ncol=None):
    """Size FIG around its panels (AXES) and add the title above, the legend (HANDLES, LABELS, read
    row by row, in NCOL columns when they fit, else as many as fit) and the caption below. Returns
    the wrapped title and caption as drawn."""
    rows, cols = len(axes), len(axes[0])
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    o_left, o_right, o_bottom, o_top = _overhangs(fig, axes, renderer)
    gap_w = o_right + GAP + o_left
    gap_h = o_bottom + GAP + o_top
    grid_w = cols * PANEL_W + (cols - 1) * gap_w
    W = max(MIN_WIDTH, PAD + o_left + grid_w + o_right + PAD)
    x0 = (W - grid_w) / 2 + (o_left - o_right) / 2  # the panels' left edge: decorations centred
    text_w = (W - 2 * PAD) * dpi

    title = wrap(renderer, title, TITLE_SIZE, text_w, weight="bold")
    caption = wrap(renderer, caption, CAPTION_SIZE, text_w)
    sup = fig.suptitle(title, fontsize=TITLE_SIZE, fontweight="bold", ha="center", va="top")
    cap = fig.text(0, 0, caption, fontsize=CAPTION_SIZE, ha="left", va="bottom", parse_math=False)
    title_h = sup.get_window_extent(renderer).height / dpi
    caption_h = cap.get_window_extent(renderer).height / dpi

    legend, legend_h = None, 0.0
    if handles:
        tries = ([min(ncol, len(handles))] if ncol else []) + list(range(len(handles), 0, -1))
        for n in tries:
            legend = fig.legend(*_row_major(handles, labels, n), loc="upper center", ncol=n, fontsize=LEGEND_SIZE,
                                frameon=False, borderaxespad=0.0, handlelength=2.2, columnspacing=1.2)
            ext = legend.get_window_extent(renderer)
            if ext.width <= text_w or n == 1:
                break
            legend.remove()
        legend_h = ext.height / dpi

    top = PAD + title_h + PAD + o_top
    bottom = o_bottom + PAD + (legend_h + PAD if legend is not None else 0.0) + caption_h + PAD
    H = top + rows * PANEL_H + (rows - 1) * gap_h + bottom
    fig.set_size_inches(W, H)
    for r in range(rows):
        for c in range(cols):
            if axes[r][c] is None:
                continue
            left = x0 + c * (PANEL_W + gap_w)
            y_top = top + r * (PANEL_H + gap_h)
            axes[r][c].set_position([left / W, 1 - (y_top + PANEL_H) / H, PANEL_W / W, PANEL_H / H])
    sup.set_position((0.5, 1 - PAD / H))
    cap.set_position((PAD / W, PAD / H))
    if legend is not None:
        legend.set_bbox_to_anchor((0.5, (caption_h + 2 * PAD + legend_h) / H), transform=fig.transFigure)
    return title, caption

