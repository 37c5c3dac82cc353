/** Types of the npm package parse-prometheus-text-format (it ships none): the text exposition format into families. */
declare module 'parse-prometheus-text-format' {
  interface PrometheusSample {
    /** As written (a string: "1", "+Inf", "1.5e3"). */
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
  }
  interface PrometheusFamily {
    name: string;
    /** Empty when the family has no HELP line. */
    help: string;
    /** Upper case: COUNTER, GAUGE, SUMMARY, HISTOGRAM, UNTYPED (no TYPE line). */
    type: string;
    metrics: PrometheusSample[];
  }
  /** @throws InvalidLineError on a line it cannot read. */
  function parsePrometheusTextFormat(text: string): PrometheusFamily[];
  export = parsePrometheusTextFormat;
}
