// Output helpers: colours only when stdout is a terminal (and NO_COLOR is unset), JSON when
// asked with --output json so scripts never parse prose.

const useColor = (): boolean => process.stdout.isTTY === true && process.env.NO_COLOR === undefined;

const codes = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;

export const paint = (color: keyof typeof codes, text: string): string =>
  useColor() ? `\u001b[${codes[color]}m${text}\u001b[0m` : text;

export type TOutputFormat = "text" | "json";

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

export const printLine = (line = ""): void => {
  process.stdout.write(`${line}\n`);
};

export const printError = (line: string): void => {
  process.stderr.write(`${paint("red", "error:")} ${line}\n`);
};

/** On stderr, so that it reaches whoever runs the command even when stdout is parsed (--output json). */
export const printWarning = (line: string): void => {
  process.stderr.write(`${paint("yellow", "warning:")} ${line}\n`);
};
