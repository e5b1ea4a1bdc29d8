// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const JSON_STRINGIFY = "CallExpression[callee.object.name='JSON'][callee.property.name='stringify']";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "**/*.js", "!eslint.config.js", "examples/batch-validate/toolkit/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // A message that shows a value it was given goes through preview() (src/core/preview.ts): bounded, with control,
    // bidi and separator characters escaped. JSON.stringify inside message text echoes a hostile value whole; a line
    // of JSON output (`${JSON.stringify(data)}\n`) is data, not a message, and stays allowed.
    files: ["src/**/*.ts", "cli/**/*.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector: `TemplateLiteral:not([quasis.length=2][quasis.0.value.raw=''][quasis.1.value.raw=/^\\\\n$/]) ${JSON_STRINGIFY}`,
          message: "Show a value in message text with preview() from src/core/preview.ts (bounded, control characters escaped), not JSON.stringify.",
        },
        {
          selector: `BinaryExpression[operator='+'] > ${JSON_STRINGIFY}`,
          message: "Show a value in message text with preview() from src/core/preview.ts (bounded, control characters escaped), not JSON.stringify.",
        },
      ],
    },
  },
);
