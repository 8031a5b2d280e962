/** A tiny inline SVG line of a topic's last numeric values (no chart library needed for this). */
export function Sparkline({ values, width = 96, height = 20, label }: { values: number[]; width?: number; height?: number; label: string }) {
  if (values.length < 2) return null;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - ((v - min) / span) * (height - 2)).toFixed(1)}`).join(" ");
  const last = values[values.length - 1]!;
  return (
    <svg
      class="topics-spark"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${label}: last ${values.length} values, from ${min} to ${max}, now ${last}`}
      data-testid="topics-sparkline"
      data-points={values.length}
    >
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}
