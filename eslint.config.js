// Lint rules (`npm run lint`): typescript-eslint's recommended set over src/, test/ and bench/, with the few
// project-specific choices below; formatting itself is prettier's job (.prettierrc.json), checked by the same script.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      // `_`-prefixed names mark deliberately unused parameters (callbacks with a fixed signature)
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // non-null assertions are used after explicit bounds checks (noUncheckedIndexedAccess-style code)
      '@typescript-eslint/no-non-null-assertion': 'off',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
);
