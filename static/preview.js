// Live preview: as the profile is edited (topics; on the settings page
// also excluded words, followed authors, categories and frequency), ask
// the server what the next digest would give from the papers stored now;
// its note names the listing days searched. Beside the topics field, the
// topics as the server read them, each with what it found over the last
// week. Plain DOM with textContent (never innerHTML), debounced; without
// JavaScript the form works the same, just without the preview.
(function () {
  var box = document.getElementById('preview');
  var url = box && box.dataset.url;
  var topics = document.getElementById('topics');
  var excluded = document.getElementById('excluded');
  var authors = document.getElementById('authors');
  var categories = document.getElementById('categories');
  var frequency = document.getElementById('frequency');
  var list = document.getElementById('preview-list');
  var topicList = document.getElementById('topic-list');
  if (!url || !topics || !window.fetch) return;
  var timer = null, seq = 0;
  function render(papers, note) {
    var noteEl = document.getElementById('preview-note');
    while (list.firstChild) list.removeChild(list.firstChild);
    papers.forEach(function (p) {
      var li = document.createElement('li');
      var title = document.createElement(p.url && p.url.indexOf('https://') === 0 ? 'a' : 'span');
      if (title.tagName === 'A') { title.href = p.url; title.rel = 'noopener'; }
      title.textContent = p.title;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = ' ' + p.reason;
      li.appendChild(title); li.appendChild(meta); list.appendChild(li);
    });
    noteEl.textContent = papers.length ? '' : (note || 'Nothing matches yet; your digest waits for papers that do.');
    box.hidden = false;
  }
  function renderTopics(topics) {
    if (!topicList) return;
    while (topicList.firstChild) topicList.removeChild(topicList.firstChild);
    topics.forEach(function (t) {
      var li = document.createElement('li');
      if (t.empty) li.className = 'empty';
      var chip = document.createElement('span');
      chip.className = 'chip';
      chip.textContent = t.topic;
      li.appendChild(chip);
      if (t.note) {
        var count = document.createElement('span');
        count.className = 'count';
        count.textContent = ' \u2014 ' + t.note;
        li.appendChild(count);
      }
      topicList.appendChild(li);
    });
  }
  function update() {
    var q = 'format=json&topics=' + encodeURIComponent(topics.value);
    [excluded, authors, categories, frequency].forEach(function (el) {
      if (el) q += '&' + el.name + '=' + encodeURIComponent(el.value);
    });
    var wanted = topics.value.trim() || (authors && authors.value.trim());
    if (!wanted) { box.hidden = true; renderTopics([]); return; }
    var mine = ++seq;
    fetch(url + '?' + q, { headers: { 'Accept': 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : { papers: [], note: r.status === 429 ? 'Too many preview requests; wait a moment.' : 'The preview is unavailable right now.' }; })
      .then(function (d) { if (mine === seq) { render(d.papers || [], d.note); renderTopics(d.topics || []); } })
      .catch(function () {});
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(update, 400); }
  [topics, excluded, authors, categories].forEach(function (el) {
    if (el) el.addEventListener('input', schedule);
  });
  if (frequency) frequency.addEventListener('change', schedule);
  if (topics.value.trim() || (authors && authors.value.trim())) update();
})();
