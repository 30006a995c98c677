/** @type {import('tailwindcss').Config} */
module.exports = {
  content: ["./views/**/*.templ", "./handlers/**/*.go"],
  theme: {
    extend: {},
  },
  plugins: [],
};
