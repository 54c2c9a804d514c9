import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const services = ['accounts', 'relay', 'mailer'];

/** The import patterns a service's files may not use: any other service. */
const serviceBoundary = (name) =>
  services
    .filter((other) => other !== name)
    .map((other) => ({
      group: [`**/services/${other}/**`, `**/${other}/src/**`],
      message: `services/${name} must not import services/${other}; move shared code to shared/`,
    }));

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', 'bench/results/**', 'infra/grafana/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  // Services never import each other: only shared/ is shared. The build fails on a cross import.
  ...services.map((name) => ({
    files: [`services/${name}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: serviceBoundary(name) }] },
  })),
  // Layers point one way: data-access never imports the domain or the entry points (row types live in
  // data-access or shared/). Flat config replaces a rule per file, so the boundary patterns repeat here.
  ...services.map((name) => ({
    files: [`services/${name}/src/data-access/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...serviceBoundary(name),
            {
              group: ['**/domain', '**/domain/**', '**/entry-points', '**/entry-points/**'],
              message: 'data-access must not import domain/ or entry-points/: move the type to data-access or shared/',
            },
          ],
        },
      ],
    },
  })),
  // shared/ never reaches into a service.
  {
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/services/**'], message: 'shared/ must not import a service' }] },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    languageOptions: {
      globals: {
        module: 'writable',
        require: 'readonly',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
